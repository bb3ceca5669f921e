-- Where a partition resumes: the first offset not yet written (NULL if it never was).
SELECT next_offset FROM consumed_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3
