"""Mail as rules see it: parsing (R2) and noise detection (R1.5). Pure, no I/O."""
