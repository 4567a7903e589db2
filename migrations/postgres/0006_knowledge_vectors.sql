-- Knowledge-base vectors in binary (a quarter of the base64 text of `embeddings`, which stays
-- readable for databases made before).
ALTER TABLE velochat_kb_documents ADD COLUMN IF NOT EXISTS vectors BYTEA;
