"""Independent fidelity reference transcribed from the ORIGINAL project
"automating-empathy-project" (tarushbansal), git mirror HEAD (commit 2dc2306),
directory crowd_sourced_feedback/:

    process_survey_results.py   compute_expected_score / update_rating (l.14-18),
                                Elo loop + response_ratings (l.46-84),
                                Pearson correlation matrix (l.86-91)
    generate_reward_dataset.py  contexts / responses / ratings (l.22-42)
    add_new_model.py            create_model_table (l.42-55)
    push_new_samples.py         sample dict (l.86-103)
    backend_config.json         status codes
    get_survey_results.py       DecimalEncoder (l.29-33): Decimal -> int

Plain Python (json, collections, numpy only); no AWS, pandas or plotting.
Nothing here "fixes" the original: arithmetic, iteration order and dict
insertion order are kept as written.

Observed quirks of the original (kept, not fixed):

* model_ratings starts as ``[1000] * 3`` (Python ints).  A model that never
  appears in any survey result keeps int 1000, written by json as ``1000``,
  not ``1000.0``.  Any rated model's entries become floats.
* The Elo update for B uses modelA's rating read BEFORE A was updated
  (both are read at the top of the criterion loop), so the update is
  symmetric.  Scores are (2 - r)/4 for A and (r + 2)/4 for B, r in -2..2
  (negative r = A better).
* model_ratings key order is the order of the model tables as returned by
  ``os.listdir(model_dir)`` (unspecified, NOT sorted).  The shipped
  results/model_ratings.json has f4e2..., f8af..., d5ea..., 45fe....
* response_ratings keys are the sample ids as Python ints in memory; json.dump
  turns them into strings ("499").  Key order = first appearance in
  survey_results.  "responses" within one id: modelA then modelB of the first
  row, new models appended as they first appear; a re-assignment of an
  existing model keeps its position (the last row's text wins).  The
  "ratings" entry of each pairwise rating is the very same list object as
  item["ratings"] (aliasing, no copy).
* The correlation matrix uses all three criteria over all rows; the survey
  ratings are ints (get_survey_results.DecimalEncoder casts Decimal -> int,
  which would truncate a fractional rating).
* generate_reward_dataset uses only criteria 0 and 1 (Empathy, Relevance):
  0.5*r0 + 0.5*r1, always a float (e.g. 0.0, -0.5, 2.0); Fluency is dropped.
  Each rating is a tuple (index_A, index_B, float) -> JSON array; indices
  are ints into the per-context responses list (the order of "responses").
  It reads response_ratings.json from disk, so its keys are strings, but only
  .values() is used (in file order).
"""

import json
from collections import OrderedDict

import numpy as np

# ---------------------------------------------------------------------------
# backend_config.json ("status_codes")
# ---------------------------------------------------------------------------
PENDING = 0
IN_PROGRESS = 1
COMPLETE = 2

CRITERIA = ["Empathy", "Relevance", "Fluency"]  # process_survey_results.py l.86


# ---------------------------------------------------------------------------
# process_survey_results.py l.14-15
# ---------------------------------------------------------------------------
def compute_expected_score(ratingA, ratingB):
    return 1 / (1 + 10 ** ((ratingB - ratingA) / 400))


# process_survey_results.py l.17-18
def update_rating(rating, actual_score, expected_score, K):
    return rating + K * (actual_score - expected_score)


# ---------------------------------------------------------------------------
# pandas DataFrame.corr() (method="pearson", min_periods=None) on
# np.array(samples).T, i.e. pandas' libalgos.nancorr: Welford's update per
# pair of columns (xi >= yi), rows in order, value written to both [xi, yi]
# and [yi, xi].  pandas >= 3 additionally clips to [-1, 1]; pandas 1.x/2.x
# did not (identical unless rounding pushes |r| above 1).  Columns are
# converted with to_numpy(dtype=float).  No NaNs occur in survey ratings.
# ---------------------------------------------------------------------------
def pandas_pearson_corr(samples):
    mat = np.array(samples).T.astype(np.float64)  # l.87-88 (N rows x K cols)
    N, K = mat.shape
    result = np.empty((K, K), dtype=np.float64)
    finite = np.isfinite(mat)
    for xi in range(K):
        for yi in range(xi + 1):
            nobs = 0
            ssqdmx = ssqdmy = covxy = meanx = meany = 0.0
            for i in range(N):
                if finite[i, xi] and finite[i, yi]:
                    vx = float(mat[i, xi])
                    vy = float(mat[i, yi])
                    nobs += 1
                    dx = vx - meanx
                    dy = vy - meany
                    meanx += 1.0 / nobs * dx
                    meany += 1.0 / nobs * dy
                    ssqdmx += (vx - meanx) * dx
                    ssqdmy += (vy - meany) * dy
                    covxy += (vx - meanx) * dy
            if nobs < 1:
                val = float("nan")
            else:
                divisor = float(np.sqrt(ssqdmx * ssqdmy))
                if divisor != 0:
                    val = covxy / divisor
                    val = min(1.0, max(-1.0, val))
                else:
                    val = float("nan")
            result[xi, yi] = result[yi, xi] = val
    return result


# ---------------------------------------------------------------------------
# process_survey_results.py l.46-91 (without printing / heatmap / file I/O).
# `model_ids`: model_table["model_id"] of the model tables in the order the
# original listed them (os.listdir order), l.36-46.
# ---------------------------------------------------------------------------
def process_survey_results(results, model_ids, K=32):
    # l.46: default ratings (ints) in model-table order
    model_ratings = {model_id: [1000] * 3 for model_id in model_ids}
    response_ratings = {}

    # l.50-84
    samples = [[], [], []]
    for item in results:
        id = item["sample"]["id"]
        if id not in response_ratings:
            response_ratings[id] = {"context": item["sample"]["context"], "responses": {}, "ratings": []}
        response_ratings[id]["responses"][item["modelA"]] = item["sample"]["responseA"]
        response_ratings[id]["responses"][item["modelB"]] = item["sample"]["responseB"]
        pairwise_rating = {
            "A": item["modelA"],
            "B": item["modelB"],
            "ratings": item["ratings"],
        }
        response_ratings[id]["ratings"].append(pairwise_rating)

        for i in range(3):
            samples[i].append(item["ratings"][i])
            modelA_rating = model_ratings[item["modelA"]][i]
            modelB_rating = model_ratings[item["modelB"]][i]

            expected_score = compute_expected_score(modelA_rating, modelB_rating)
            model_ratings[item["modelA"]][i] = update_rating(
                modelA_rating,
                (2 - item["ratings"][i]) / 4,
                expected_score,
                K=K,
            )

            expected_score = compute_expected_score(modelB_rating, modelA_rating)
            model_ratings[item["modelB"]][i] = update_rating(
                modelB_rating,
                (item["ratings"][i] + 2) / 4,
                expected_score,
                K=K,
            )

    # l.86-91: pd.DataFrame(np.array(samples).T, columns=criteria).corr()
    correlation = pandas_pearson_corr(samples)
    return model_ratings, response_ratings, correlation


def model_ratings_json(model_ratings):
    """process_survey_results.py l.139-140: text written by json.dump."""
    return json.dumps(model_ratings)


def response_ratings_json(response_ratings):
    """process_survey_results.py l.143-144: text written by json.dump
    (int sample ids become string keys)."""
    return json.dumps(response_ratings)


# ---------------------------------------------------------------------------
# generate_reward_dataset.py l.22-36.  The original passes
# json.load(open(".../response_ratings.json")).values(); an in-memory dict
# from process_survey_results gives the same values in the same order.
# ---------------------------------------------------------------------------
def generate_reward_dataset(response_ratings):
    data = list(response_ratings.values())  # l.22

    contexts, responses, ratings = [], [], []
    for item in data:
        contexts.append(item["context"])
        ordered_res = OrderedDict(item["responses"].items())
        responses.append(list(ordered_res.values()))
        pairwise_ratings = []
        for rating in item["ratings"]:
            pairwise_ratings.append((
                list(ordered_res.keys()).index(rating["A"]),
                list(ordered_res.keys()).index(rating["B"]),
                0.5 * rating["ratings"][0] + 0.5 * rating["ratings"][1],
            ))
        ratings.append(pairwise_ratings)
    return contexts, responses, ratings


# generate_reward_dataset.py l.37-42: json.dump(x, f) with default settings
# (ensure_ascii=True, separators ", " / ": ", no trailing newline).
def reward_dataset_files(response_ratings):
    contexts, responses, ratings = generate_reward_dataset(response_ratings)
    return {
        "contexts.json": json.dumps(contexts),
        "responses.json": json.dumps(responses),
        "ratings.json": json.dumps(ratings),
    }


# ---------------------------------------------------------------------------
# add_new_model.py l.42-48 (the table; l.49-53 then writes it with
# json.dump to model_data/{id}.json and chmods it read-only).
#
# BUGS in add_new_model.py (kept out of this transcription, noted here):
# * l.116-117: version=len([... if model_table["name"] == cli_args.model_name])
#   uses key "name", but tables only have "model_name".  model_tables is never
#   empty at that point (the GOLD table is appended at l.100 if missing), so
#   the script ALWAYS raises KeyError: 'name' there -- after possibly writing
#   the GOLD table, before writing the new model's table or pushing samples.
#   The GOLD table gets version=None (printed as "GOLD_vNone").
# * l.104: responses keyed by test_data item["id"] (whatever type it has in
#   memory; in the written file, keys become strings).  Were l.117 fixed,
#   l.132-146 index responses[id] and contexts[id] with ids from a DynamoDB
#   scan, which boto3 returns as decimal.Decimal: contexts[Decimal] raises
#   TypeError (list indices must be integers); responses[Decimal] only works
#   when the keys are ints.  The new model is also paired with every
#   existing table (including GOLD) for every already-pushed id.
# * Table.scan() is called once without LastEvaluatedKey pagination
#   (here, push_new_samples.py l.71, get_survey_results.py l.43): only the
#   first 1 MB page of items is seen.
# ---------------------------------------------------------------------------
def model_table(id, name, version, responses):
    return {
        "model_id": id,
        "model_name": name,
        "version": version,
        "responses": responses,
    }


# ---------------------------------------------------------------------------
# push_new_samples.py l.92-102 (identical layout in add_new_model.py
# l.140-150).  The original sets id=str(uuid.uuid4()), the model pair in
# random order (random.seed() then random.shuffle, l.90-91: not
# reproducible), sample id = integer index into the test contexts, and
# status=PENDING.  Completed survey rows come back (get_survey_results.py)
# with an extra "ratings" list of 3 ints and status COMPLETE; DynamoDB
# returns keys in its own order.
#
# Quirks in push_new_samples.py:
# * l.76-78: logger.info(f"...", "per model ...") passes the second string as
#   a %-format argument; the message has no placeholder, so logging prints a
#   "--- Logging error ---" traceback (TypeError: not all arguments converted)
#   to stderr and the script continues.
# * Pairs are every unordered pair (i < j) of model tables, in os.listdir
#   order, for each randomly sampled not-yet-pushed context id.
# ---------------------------------------------------------------------------
def sample_record(sample_id, model_a, model_b, context_id, context,
                  response_a, response_b, status=PENDING):
    return {
        "id": sample_id,
        "modelA": model_a,
        "modelB": model_b,
        "sample": {
            "id": context_id,
            "context": context,
            "responseA": response_a,
            "responseB": response_b},
        "status": status,
    }
