"""The pure decision core: guards, the policy (readings -> decision) and the planner (decision -> actions)."""
