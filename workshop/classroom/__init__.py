"""Running the class: labs onto the VMs (``deploy``), pre-class publishing (``prepare``),
the students' work checked (``check``), the cohort at a glance (``report``), login cards
(``cards``). Each returns data; ``workshop/cli/`` prints it."""
