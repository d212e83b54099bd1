"""The human half of RLHF (`launch/survey.py`): model tables and pairwise samples in the
original's `crowd_sourced_feedback` formats, a rating page served from a local database, the
original's Elo ratings (plus bootstrap intervals and a Bradley-Terry fit), and the reward
dataset made from the answers."""
