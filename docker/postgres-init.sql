-- Run once by the postgres image on an empty volume: Airflow's metadata, MLflow's tracking store
-- and MLflow's users and permissions, each its own database, owned by POSTGRES_USER.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
