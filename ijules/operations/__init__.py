"""Operations: weeks of the lifecycle replayed through Airflow, and their timeline."""
