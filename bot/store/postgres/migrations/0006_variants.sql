-- Mirrors bot/store/migrations/0006_variants.sql: sibling turns asked for together share a group.
ALTER TABLE turns ADD COLUMN variant_group BIGINT;
ALTER TABLE turns ADD COLUMN variant_index INTEGER;
ALTER TABLE turns ADD COLUMN variant_count INTEGER;
CREATE INDEX turns_by_variant_group ON turns (variant_group) WHERE variant_group IS NOT NULL;
