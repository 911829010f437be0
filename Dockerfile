# The production image: Airflow's official image plus this project's pinned
# requirements and its provider entry point (the vendor connection forms).
# docker-compose.yaml builds it and mounts the project over /opt/airflow/project,
# so DAGs, the package and include/ stay editable without a rebuild.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

COPY --chown=airflow:0 requirements.txt /opt/airflow/project/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/project/requirements.txt

COPY --chown=airflow:0 pyproject.toml /opt/airflow/project/pyproject.toml
COPY --chown=airflow:0 plugins /opt/airflow/project/plugins
RUN pip install --no-cache-dir --no-deps /opt/airflow/project
