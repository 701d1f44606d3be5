"""The optimizer report: built from a study's trials as the API shows them (pure: no database, no Optuna),
and rendered as one offline HTML file with inline SVG charts."""
