#!/usr/bin/env python3
"""Seed 003's JobManager, verbatim, and a driver: how the TickStock app submits and cancels backtests."""
# Tested by test/integration/tickstock-jobs.test.ts: tickbus's job bridge and reference
# backtest worker must run these jobs with the seed's code unchanged. Run with Debian's
# interpreter and its redis module: /usr/bin/python3 (apt-get install python3-redis).
#
#   REDIS_URL=redis://127.0.0.1:6379 /usr/bin/python3 test/python/seed003_job_manager.py submit '<job json>' [times]
#   ... cancel JOB_ID | publish-raw TEXT
import json
import os
import sys
import time

try:
    import redis
except ImportError:
    sys.stderr.write("seed003_job_manager.py needs redis-py: install it with apt-get install python3-redis "
                     "and run this with /usr/bin/python3\n")
    sys.exit(3)


# ---- seed 003's JobManager, as the seed has it (do not edit: the test is that it works unchanged) ----
class JobManager:
    def __init__(self, redis_client: redis.Redis):
        self.redis = redis_client
        
    def submit_job(self, job_data: dict) -> str:
        """Submit job and track status"""
        job_id = job_data['job_id']
        
        # Store job metadata
        job_key = f"job:{job_id}"
        self.redis.hset(job_key, mapping={
            'status': 'submitted',
            'user_id': job_data['user_id'],
            'created_at': time.time(),
            'job_data': json.dumps(job_data)
        })
        self.redis.expire(job_key, 24 * 3600)  # 24 hour TTL
        
        # Publish job to TickStockPL
        self.redis.publish('tickstock.jobs.backtest', json.dumps(job_data))
        
        return job_id
        
    def cancel_job(self, job_id: str) -> bool:
        """Cancel running job via Redis coordination"""
        cancel_command = {
            'command': 'cancel_job',
            'job_id': job_id,
            'timestamp': time.time()
        }
        
        # Publish cancellation command
        self.redis.publish('tickstock.jobs.system', json.dumps(cancel_command))
        
        # Update job status
        job_key = f"job:{job_id}"
        self.redis.hset(job_key, 'status', 'cancelling')
        
        return True
# ---- end of the seed's code ----


def main(argv):
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), decode_responses=True)
    manager = JobManager(r)
    command = argv[1] if len(argv) > 1 else ""
    if command == "submit" and len(argv) >= 3:
        job = json.loads(argv[2])
        job.setdefault("timestamp", time.time())
        for _ in range(int(argv[3]) if len(argv) > 3 else 1):
            print(json.dumps({"submitted": manager.submit_job(job)}))
        return 0
    if command == "cancel" and len(argv) == 3:
        print(json.dumps({"cancelled": manager.cancel_job(argv[2])}))
        return 0
    if command == "publish-raw" and len(argv) == 3:
        # Not the seed's: a malformed request on the seed's channel, as a buggy producer would send.
        print(json.dumps({"receivers": r.publish("tickstock.jobs.backtest", argv[2])}))
        return 0
    sys.stderr.write("usage: seed003_job_manager.py submit JSON [times] | cancel JOB_ID | publish-raw TEXT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
