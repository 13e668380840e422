-- placeholder: helper store writes the schema
SELECT 1;
