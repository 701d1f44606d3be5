"""The parts of bench/search_quality.py: records, trainers, strategies and measures."""
