"""A first Capsule task: `capsule build hello.py --export && capsule exec hello.capsule -- Ada`."""
from capsule import task


@task(name="main", compute="MEDIUM", ram="64MB", timeout="5s")
def main(name: str = "world") -> dict:
    return {"greeting": f"Hello, {name}!", "squares": sum(i * i for i in range(1000))}
