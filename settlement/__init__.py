"""Settlement: escrow contract source and build, chain client, nonces, reconciliation."""
