from capsule import task


@task
def main():
    return {"ok": True}
