//! Building a faiss-compatible IVF-Flat feature index from training features (k-means), as RVC does.
