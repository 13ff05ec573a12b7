"""What a run writes down: typed clip logs and plans, events, failures, the run folder's layout."""
