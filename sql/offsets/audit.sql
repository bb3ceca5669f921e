-- One row of the reset audit trail (sql/migrations/0005_offset_resets.sql), in the reset's transaction.
INSERT INTO offset_resets
       (consumer_group, topic, partition, old_offset, new_offset, broker_low, broker_high, how,
        reason, os_user)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
