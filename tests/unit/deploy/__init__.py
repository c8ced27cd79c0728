"""The deployment files, checked without a container engine or a cluster (the build machine
has neither): one test module per artifact (``test_dockerfile``, ``test_install_parity``,
``test_dockerignore``, ``test_compose``, ``test_compose_services``, ``test_k8s``,
``test_k8s_workloads``, ``test_prometheus_rule``), the parsers and renderers they use beside
them (``dockerfile``, ``pip_steps``, ``dockerignore``, ``compose``, ``compose_checks``,
``k8s_render``, ``k8s_checks``), paths and shared constants in ``paths``."""
