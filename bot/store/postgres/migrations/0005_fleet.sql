-- The fleet-wide queue (FLEET_QUEUE=true; bot/store/postgres/fleet.py): which process runs which
-- turn until when, and when each user was last served (round robin across the fleet).
CREATE TABLE fleet_leases (
    turn_id     BIGINT PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
    owner       TEXT   NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL
);
CREATE TABLE fleet_served (
    user_id BIGINT PRIMARY KEY,
    served  BIGINT NOT NULL
);
CREATE SEQUENCE fleet_serve_seq;
