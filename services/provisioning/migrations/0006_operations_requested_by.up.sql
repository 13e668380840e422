-- Who asked for an operation (the caller's subject), so that a platform
-- admin's action on a tenant's instance is attributed to the admin.
ALTER TABLE operations ADD COLUMN requested_by VARCHAR(255) NOT NULL DEFAULT '';
