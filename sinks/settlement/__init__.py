"""The settlement sink: the escrow as a destination of the sink runner."""
