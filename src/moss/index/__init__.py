"""The in-memory index: vectors, filters, keyword index, quantisation, fusion."""
