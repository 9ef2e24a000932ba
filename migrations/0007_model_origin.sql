-- Which front door made a model (issue 10): each dialect renders a model
-- made elsewhere with defaults of its own, and the web UI shows the door.
-- Older rows are classified by the attributes only their door writes.
ALTER TABLE models ADD COLUMN origin TEXT NOT NULL DEFAULT 'octomil'
    CHECK (origin IN ('octomil', 'datarobot', 'paperspace'));
UPDATE models SET origin = CASE
    WHEN json_extract(attrs, '$.targetType') IS NOT NULL THEN 'datarobot'
    WHEN json_extract(attrs, '$.isPublic') IS NOT NULL THEN 'paperspace'
    ELSE 'octomil'
END;
-- Every model has a name, because DataRobot's and Paperspace's clients
-- require one: a model created without one (Octomil allows that) is named
-- `model-` and the last 8 characters of its id, by every door alike.
UPDATE models SET name = 'model-' || substr(id, -8) WHERE name = '';
