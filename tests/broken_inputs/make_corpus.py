"""Writes tests/broken_inputs/<case>/ (data files + case.json); the files are committed.

Run from the repository root: python tests/broken_inputs/make_corpus.py
"""
import json, pickle, shutil
from pathlib import Path

root = Path("tests/broken_inputs")
for old in root.iterdir():
    if old.is_dir():
        shutil.rmtree(old)
INTER_H = "user_id:token\titem_id:token\ttimestamp:float\n"
ITEM_H = "item_id:token\ttitle:token_seq\n"

def good_inter(n_users=6, n_items=30, per_user=8):
    rows = []
    for u in range(n_users):
        for t in range(per_user):
            rows.append(f"u{u}\t{(u * 3 + t) % n_items}\t{t}\n")
    return INTER_H + "".join(rows)

def good_item(n_items=30):
    return ITEM_H + "".join(f"{i}\tMovie number {i}\n" for i in range(n_items))

cases = {}
def atomic(name, inter=None, item=None, expect="", args=(), write_bytes=False):
    d = root / name
    d.mkdir(parents=True)
    for suffix, content in ((".inter", inter), (".item", item)):
        if content is None:
            continue
        p = d / f"data{suffix}"
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    cases[name] = {"args": ["--dataset", "{dir}", *args], "expect": expect}

def llara(name, files, expect, args=()):
    d = root / name
    d.mkdir(parents=True)
    for fname, content in files.items():
        p = d / fname
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    cases[name] = {"args": ["--dataset", "{dir}", *args], "expect": expect}

def cli(name, args, expect):
    cases[name] = {"args": list(args), "expect": expect}

items_txt = "".join(f"{i}::Artist {i}\n" for i in range(30))
good_csv = "history,target\n" + "".join(f"{i} {i+1} {i+2},{i+3}\n" for i in range(10))

atomic("empty-inter", "", good_item(), "data.inter: empty file")
atomic("empty-item", good_inter(), "", "data.item: empty file")
atomic("header-without-types", "user_id\titem_id\ttimestamp\nu1\t1\t1\n", good_item(), "has no ':type'")
atomic("misnamed-item-column", good_inter().replace("item_id:token", "itemid:token"), good_item(), "no 'item_id' column")
atomic("missing-user-column", "item_id:token\ttimestamp:float\n1\t1\n", good_item(), "no 'user_id' column")
atomic("no-title-column", good_inter(), "item_id:token\tgenre:token\n" + "".join(f"{i}\tDrama\n" for i in range(30)), "no title column")
atomic("non-numeric-timestamp", good_inter().replace("u2\t7\t1\n", "u2\t7\tyesterday\n"), good_item(), "timestamp 'yesterday' is not a number")
atomic("item-without-title-row", good_inter() + "u0\t999\t99\n", good_item(), "item '999' has no row")
atomic("duplicate-item-id", good_inter(), good_item() + "5\tAnother five\n", "item_id '5' appears twice")
atomic("empty-title", good_inter(), good_item().replace("3\tMovie number 3\n", "3\t\n"), "empty title")
atomic("title-with-tab", good_inter(), good_item().replace("Movie number 4\n", "Movie\tnumber 4\n"), "data.item")
atomic("title-with-newline", good_inter(), good_item().replace("Movie number 4\n", "Movie\nnumber 4\n"), "data.item")
atomic("non-utf8-title", good_inter().encode(), good_item().encode().replace(b"Movie number 6", b"Movie \xff\xfe 6"), "not valid UTF-8")
atomic("huge-title", good_inter(), good_item().replace("Movie number 7", "x" * 10000), "title of 10,000 characters")
atomic("truncated-inter", good_inter()[:-7], good_item(), "data.inter")
atomic("only-one-interaction-users", INTER_H + "".join(f"u{u}\t{u}\t1\n" for u in range(20)), good_item(), "no sample with at least")
atomic("fewer-items-than-candidates", good_inter(n_users=30, n_items=12), good_item(12), "negatives")
atomic("no-item-file", good_inter(), None, "data.item: missing")

llara("llara-bad-header", {"test.csv": "hist,tgt\n1 2 3,4\n", "items.txt": items_txt}, "expected header 'history,target'")
llara("llara-truncated-csv", {"test.csv": good_csv + "4 5 6", "items.txt": items_txt}, "expected 2 fields")
llara("llara-negative-id", {"test.csv": good_csv + "1 2 3,-4\n", "items.txt": items_txt}, "item id -4 outside")
llara("llara-unknown-id", {"test.csv": good_csv + "1 2 3,400\n", "items.txt": items_txt}, "item id 400 outside")
llara("llara-non-integer-id", {"test.csv": good_csv + "1 two 3,4\n", "items.txt": items_txt}, "ids must be integers")
llara("llara-duplicate-item-id", {"test.csv": good_csv, "items.txt": items_txt + "3::Again\n"}, "item id 3 appears twice")
llara("llara-bad-items-line", {"test.csv": good_csv, "items.txt": items_txt + "just a name\n"}, "expected 'id::name'")
llara("llara-no-titles", {"test.csv": good_csv}, "no item titles")
llara("llara-empty-test", {"test.csv": "", "items.txt": items_txt}, "expected header")
llara("llara-foreign-pickle", {"Test_data.df": pickle.dumps({"not": "upstream"}), "id2name.txt": items_txt}, "refusing to unpickle")
llara("llara-trusted-garbage-pickle", {"Test_data.df": b"not a pickle at all", "id2name.txt": items_txt}, "cannot be read as a pandas pickle", args=("--trust-pickle",))

cli("unknown-method", ["--methods", "popp"], "unknown method 'popp' (did you mean 'pop'?)")
cli("unknown-dataset", ["--dataset", "ml-10k"], "unknown data set 'ml-10k'")
cli("missing-dataset-path", ["--dataset", "./no/such/folder"], "does not exist")
cli("unknown-split", ["--split", "random"], "unknown split scheme 'random'")
cli("unknown-exclude", ["--exclude", "everything"], "unknown negative-exclusion mode")
cli("negative-seed", ["--seeds", "-3"], "expected a non-negative integer, got -3")
cli("absurd-seed", ["--seeds", "99999999999"], "outside 0..2^32-1")
cli("absurd-negatives", ["--negatives", "5000000"], "--negatives must be within")
cli("zero-negatives", ["--negatives", "0"], "--negatives must be within")
cli("zero-max-history", ["--max-history", "0"], "--max-history must be at least 1")
cli("min-above-max-history", ["--min-history", "20"], "--min-history must be within")
cli("bad-set-syntax", ["--set", "pop=1"], "expected METHOD.PARAM=VALUE")
cli("unknown-parameter", ["--set", "pop.alpha=1"], "has no parameter 'alpha'")
cli("bad-device", ["--device", "tpu"], "--device must be auto, cpu or cuda")
cli("llm-unknown-profile", ["--methods", "ilora", "--set", "ilora.profile=fast"], "unknown LLM profile 'fast'")
d = root / "llm-path-not-a-model"
d.mkdir(parents=True)
(d / "README.txt").write_text("not a model\n")
cases["llm-path-not-a-model"] = {"args": ["--methods", "tallrec", "--set", "tallrec.llm={dir}"],
                                 "expect": "is not one of smollm2, gemma3-270m and not a local Hugging Face model folder"}

for name, case in cases.items():
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "case.json").write_text(json.dumps(case, indent=1) + "\n")
print(len(cases), "cases")
