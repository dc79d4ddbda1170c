"""``scaler_top``: a live terminal view of a scheduler."""
