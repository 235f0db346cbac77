"""The payments domain: the double-entry ledger, holds and refunds. Pure code."""
