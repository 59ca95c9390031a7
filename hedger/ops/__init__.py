"""Operations: the long-running keeper (watch), metrics, alerts, check and report."""
