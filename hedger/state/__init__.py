"""What outlives a process: the journal, the reconciliation of what an earlier run signed, the account lock."""
