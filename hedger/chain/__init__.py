"""Chain I/O: batched block-pinned reads, the oracle, ABIs, and the executor (the only code that signs)."""
