"""Trainers: supervised fine-tuning (sft), and later reward modelling and PPO, over shared
losses, optimizer, train state, run folders and checkpointing."""
