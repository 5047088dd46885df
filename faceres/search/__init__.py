"""1:N over a photo collection: build a face index (SQLite + FAISS), search it, group it."""
