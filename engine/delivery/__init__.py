"""Delivery: completed videos saved to disk, and render outcomes learnt from webhooks."""
