"""Where verdicts live (``base.Ledger``): Redis for production, memory for the embedded
default. Also remembers served hits for a while, so apps can give feedback on them."""
