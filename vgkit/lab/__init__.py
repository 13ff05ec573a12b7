"""What the notebooks call: parameters, the shot-card editor, the live progress views, the compare sweep."""
