"""AiiDA calculation plugins (CalcJobs and calcfunctions) of aiida-sorep."""
