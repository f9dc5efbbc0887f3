"""Everything right of collate: frontends, encoders, pooling and heads."""
