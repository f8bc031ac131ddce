"""The network: encoders, pooling, heads, the multi-label model, seed ensembles and the pieces that
make it fast (first-token last layer, dropout, masking)."""
