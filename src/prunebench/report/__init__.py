"""What a reviewer reads: the results tables' schema, arm labels and styles, statistics, the papers' claims, the replication report and the figures. Imports the library only."""
