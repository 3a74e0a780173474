-- Variants: sibling turns asked for together (same parent, same prompt) share a group and are
-- shown on one board; each is still its own turn (queued, limited and billed on its own).
ALTER TABLE turns ADD COLUMN variant_group INTEGER;
ALTER TABLE turns ADD COLUMN variant_index INTEGER;
ALTER TABLE turns ADD COLUMN variant_count INTEGER;
CREATE INDEX turns_by_variant_group ON turns (variant_group) WHERE variant_group IS NOT NULL;
