"""ilora-bench harness: data set -> split -> frozen candidates -> method -> metrics -> record -> leaderboard."""

__version__ = "0.1.0"
