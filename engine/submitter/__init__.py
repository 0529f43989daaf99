"""Step 4: rate-limited, concurrent submission with retries that never duplicate."""
