"""The simulator: scenarios, forked-chain replays through the production keeper, reports, plots, local chains."""
