class QuotaExceeded(Exception):
    """The organization cannot pay for this request (no credits, or past its monthly cap)."""
