"""The linear baseline: TF-IDF word n-grams and one logistic regression per label."""
