DELETE FROM locks WHERE name = 'device_codes';
DROP TABLE device_codes;
