import datetime, pendulum
def test_smoke(sandbox, connect, data_root, airflow_db, state_dir):
    connect("recreativ", requests_per_second=50)
    sandbox.configure("recreativ", rate_limit=50, campaigns=10)
    from airflow.dag_processing.dagbag import DagBag
    import os
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("recreativ_statistics")
    run = dag.test(logical_date=pendulum.datetime(2024, 3, 1, tz="UTC"))
    print(run.state)
    assert run.state == "success"
