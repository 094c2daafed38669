"""Tree search over an idea's experiment variants (`--search tree`): the pure core, and how it will be wired.

The core, which touches no run, no git and no LLM:
- tree.py: typed nodes (kind draft/debug/improve, status pending/running/ok/failed, commit, run folder, primary
  metric value and score, debug depth) and the Tree, saved atomically to tree.json in the idea folder;
- policy.py: SearchParams (every default in one place) and next_actions, which says what to expand next;
- best.py: the primary metric, the noise floor, each node's score, and the best node, all decided by code.

How the wiring will go (next step; nothing below exists yet):
- A TreeSearchStage beside scientist/pipeline/runs.py, chosen in scientist/pipeline/__init__.py's stages() in place
  of RunsStage when the launch says `--search tree` (LaunchConfig gains `search` and the SearchParams fields; linear
  stays the default and keeps RunsStage untouched). It builds the Tree once from best.primary_metric (the idea's
  named metric: the idea schema, ideas/schema.json, needs an optional field for it), best.noise_floor of run_0 and a
  seed written into tree.json (its name a constant of scientist/store/folder.py, which alone knows the idea
  folder's file names), then loops: policy.next_actions(tree, params, policy.decision_random(tree),
  params.parallel_nodes); add the nodes to the tree and save it before any LLM call; expand the batch; record each
  result; save. The next batch is decided only once the whole batch has finished, so no decision depends on which
  parallel node happened to finish first: a resume that replays the idea from its journals (IdeaFolder.
  prepare_replay resets the work tree to the first commit) then rebuilds the same tree, decision for decision.
- Nodes as commits: a node's code is committed in the idea's repository (IdeaFolder.commit) and tagged node.tag
  (`node-<id>`); a child starts from its parent's tag, a draft from the first commit (the template copy). Because
  parallel nodes cannot share one experiment.py, each node of a batch needs a work tree of its own (`git worktree
  add` under the idea folder, kept out of git by the idea's .gitignore) where its coder edits and its run runs.
- The coder for a node is a fresh scientist.llm.coder.Coder over the node's work tree, paid from the idea's Ledger
  (every reply journaled in cost_ledger.json and replayed on resume by its request digest, scientist/llm/client.py).
  Replays are matched by the request, so two parallel "improve node 4" prompts must differ (say which node they
  create), or a resume could hand their replies to each other. Its prompt (in prompts/, one file per kind) carries
  the results blocks of tree.path(node), not the whole tree.
- Runs: scientist.experiment.runner.run_experiment(manifest, python, folder, run_number, timeout,
  out_dir=...) already runs `experiment.py --out_dir=<out_dir>` in the sandbox with nested out dirs
  (run_k/seeds/seed_s); node k's run (in its work tree) ends up as the idea folder's run_<k+1> (run_0 stays the
  baseline), journaled through RunAttempts (run_attempts.json, keyed by run number and code digest) so a finished
  node is never run again, and recorded in state.runs like a linear run. Its score is
  best.score of its final_info against run_0 and the baseline frontier (noise.read_frontier); lines_changed is git's
  diff stat against the first commit.
- At the end best.best_node is re-run on --seeds seeds the way scientist/pipeline/seeds.py repeats the main run
  (state.main_run set to its run number), so the seeds, notes and paper stages read its means unchanged.
- notes.txt gets metrics.results_block per node with its parent and kind in the header; tree.html draws tree.json
  and the report links it; the paper reads the path to the best node and its siblings as ablations; the live view
  (scientist/launch/progress.py) shows nodes done, running and the best so far from tree.json.
"""
