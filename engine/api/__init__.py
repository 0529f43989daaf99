"""The API seam: one transport, one pure dialect per HeyGen API (V2, v3)."""
