"""The search: archive (islands, MAP-Elites), features, edits and regions, the offline mutator and crossover."""
