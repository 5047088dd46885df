"""The lesion study (Veit, Wilber & Belongie, NeurIPS 2016): `run` deletes blocks of trained
networks at test time and follows the gradient along paths of each length, `fast` evaluates many
lesions at once, `report` turns the results into a table, findings, cards and plots."""
