-- the results database of dashcam-pipeline (tables are created by its Alembic migrations)
CREATE DATABASE dashcam OWNER prefect;
