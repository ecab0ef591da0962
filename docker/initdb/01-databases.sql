-- One PostgreSQL server, one database per service (run once, when the data volume is empty).
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
CREATE DATABASE optuna;
