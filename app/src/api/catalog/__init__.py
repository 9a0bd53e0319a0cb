"""The catalog: products mirrored from the catalog provider by a scheduled sync, served from memory."""
