-- One database per service: each owns its data and nothing else reads it.
CREATE DATABASE clarion_campaign;
CREATE DATABASE clarion_segment;
CREATE DATABASE clarion_delivery;
CREATE DATABASE clarion_reporting;
